{#- meta.cio of the package's marts: how the exporter syncs them (schema:
    exporter/cio_sync/schemas/meta_cio.schema.json, keys in docs/exporter.md). -#}

{#- People attributes that come from optional inputs; excluded from the sync when the input
    is not configured, so an unconfigured input never blanks a value in Customer.io. -#}
{% macro people_columns_by_input() -%}
    {{ return({
        'order_lines': ['last_product_category', 'next_reorder_due_at'],
        'checkouts': ['last_checkout_started_at'],
        'subscriptions': ['is_subscriber', 'subscription_status'],
        'refunds': ['has_refund'],
    }) }}
{%- endmacro %}

{% macro people_meta() -%}
    {%- set identifier = cio_sync.identifier() -%}
    {#- Time-relative columns change every day for every buyer: segment on last_order_at
        with a relative-date condition in Customer.io instead. -#}
    {%- set exclude = ['days_since_last_order'] + (var('cio_people_exclude', []) or []) -%}
    {%- set inputs = ['customers', 'orders'] -%}
    {%- for input_name, columns in cio_sync.people_columns_by_input().items() -%}
        {%- if cio_sync.input_enabled(input_name) -%}
            {%- do inputs.append(input_name) -%}
        {%- else -%}
            {%- do exclude.extend(columns) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set meta = {
        'kind': 'people',
        'identifier': {'column': identifier, 'kind': cio_sync.identifier_kind()},
        'exclude': exclude,
        'attribute_prefix': var('cio_attribute_prefix', '') or '',
        'null_as': var('cio_people_null_as', 'null'),
        'on_delete': 'ignore',
        'inputs': inputs,
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
        'guardrails': [{'name': 'orders_without_last_order_at', 'condition': 'orders_count > 0 and last_order_at is null'}],
    } -%}
    {%- do meta.update(cio_sync.with_max_lag('cio_max_lag_people', '26h')) -%}
    {{ return(meta) }}
{%- endmacro %}

{#- meta.cio of cio_people_attributes: people like cio_people's, its columns all attributes. -#}
{% macro people_attributes_meta() -%}
    {%- set meta = {
        'kind': 'people',
        'identifier': {'column': cio_sync.identifier(), 'kind': cio_sync.identifier_kind()},
        'attribute_prefix': var('cio_attribute_prefix', '') or '',
        'null_as': var('cio_people_null_as', 'null'),
        'on_delete': 'ignore',
        'inputs': ['customers'],
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
    } -%}
    {%- do meta.update(cio_sync.with_max_lag('cio_max_lag_people', '26h')) -%}
    {{ return(meta) }}
{%- endmacro %}

{#- {'max_lag': the var named `var_name`} (a duration), or {} when the var is empty or null: what
    a mart's meta.cio is updated with, so that `cio-export status --strict` flags a stopped sync. -#}
{% macro with_max_lag(var_name, default) -%}
    {%- set value = var(var_name, default) -%}
    {{ return({'max_lag': value} if value else {}) }}
{%- endmacro %}

{#- `cadence`: 'cart' for the cart-recovery events (var cio_max_lag_cart_events), else 'daily'
    (var cio_max_lag_events). -#}
{% macro event_meta(event_name, inputs, extra_exclude=[], overrides={}, cadence='daily') -%}
    {%- set identifier = cio_sync.identifier() -%}
    {%- set exclude = ['event_name', 'email' if identifier == 'customer_id' else 'customer_id'] + extra_exclude -%}
    {%- set meta = {
        'kind': 'event',
        'identifier': {'column': identifier, 'kind': cio_sync.identifier_kind()},
        'event_name': event_name,
        'event_id_column': 'event_id',
        'timestamp_column': 'event_at',
        'exclude': exclude,
        'initial_window': var('cio_initial_window', '2h'),
        'max_event_age': var('cio_max_event_age', '72h'),
        'backfill': var('cio_backfill', 'skip'),
        'inputs': inputs,
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
    } -%}
    {%- do meta.update(cio_sync.with_max_lag('cio_max_lag_cart_events', '3h') if cadence == 'cart'
        else cio_sync.with_max_lag('cio_max_lag_events', '26h')) -%}
    {%- do meta.update(overrides) -%}
    {{ return(meta) }}
{%- endmacro %}

{#- Lower bound of an incremental event model's re-read: latest event minus the lookback
    (var cio_event_lookback_hours), so late-arriving rows are still picked up. -#}
{% macro incremental_lower_bound(column='event_at') -%}
    coalesce(
        (select {{ dbt.dateadd('hour', -1 * var('cio_event_lookback_hours', 72), 'max(' ~ column ~ ')') }} from {{ this }}),
        cast('1900-01-01' as {{ dbt.type_timestamp() }})
    )
{%- endmacro %}

{#- Whether this build of the model takes its incremental path: is_incremental(), unless the
    incremental path would recompute every row anyway (whole_build_reason), and always when
    compiling offline (--no-introspect, e.g. the Redshift compile check): there is no warehouse
    to ask, so the incremental branch is compiled, being the superset of SQL a scheduled run
    executes. -#}
{% macro is_incremental_run() -%}
    {%- if execute and not flags.INTROSPECT -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(is_incremental() and not cio_sync.whole_build_reason()) }}
{%- endmacro %}

{#- Why this build of an incremental model is a whole build (its full-build SQL, into the
    table the pre-hook empty_for_whole_build() emptied), or '' when it is incremental. Besides
    dbt's own (a first build, --full-refresh), when the incremental path would recompute every
    row, key by key, at many times the cost of a whole build:
    - its table is empty (a crash empties PostgreSQL's unlogged staging and intermediate tables);
    - after staging, the build log has no entry for it (emptied, or written for another
      database): every upstream row would count as changed since;
    - a model it reads was built whole since its own last build (e.g. `dbt build --full-refresh
      --select stg_cio__orders` alone, or one of the above): every row it reads was stamped
      anew. Whole builds are logged (full_build), so this carries down the graph.
    Decided once per model and kept in the model's context: the model's SQL and its hooks
    (some of which run after its rows are written) take the same path. -#}
{% macro whole_build_reason() -%}
    {%- if not (execute and flags.INTROSPECT) or model is not defined -%}
        {{ return('') }}
    {%- endif -%}
    {%- if '_cio_whole_build_reason' in model -%}
        {{ return(model['_cio_whole_build_reason']) }}
    {%- endif -%}
    {%- set reason = namespace(text='') -%}
    {%- if not is_incremental() -%}
        {%- set reason.text = 'first build or --full-refresh' -%}
    {%- else -%}
        {#- The tables it reads, through views (a view stamps no rows of its own). -#}
        {%- set upstream = [] -%}
        {%- set walk = namespace(nodes=model.depends_on.nodes | list) -%}
        {%- for depth in range(10) if walk.nodes -%}
            {%- set next_nodes = [] -%}
            {%- for node_id in walk.nodes if node_id in graph.nodes and graph.nodes[node_id].resource_type == 'model' -%}
                {%- set node = graph.nodes[node_id] -%}
                {%- if node.config.materialized in ('view', 'ephemeral') -%}
                    {%- do next_nodes.extend(node.depends_on.nodes) -%}
                {%- else -%}
                    {%- do upstream.append(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias) | string) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set walk.nodes = next_nodes -%}
        {%- endfor -%}
        {%- set log_relation = cio_sync.build_log_relation() -%}
        {%- set this_name = (this | string | replace("'", "''")) -%}
        {%- set sql -%}
            select
                (select count(*) from (select 1 as one from {{ this }} limit 1) as held) as held_rows,
                (select max(built_at) from {{ log_relation }} where relation_name = '{{ this_name }}') as last_built_at,
                {%- if upstream %}
                (select min(relation_name) from {{ log_relation }}
                    where full_build
                        and relation_name in ({% for name in upstream %}'{{ name | replace("'", "''") }}'{{ ', ' if not loop.last }}{% endfor %})
                        and built_at > coalesce((select max(built_at) from {{ log_relation }} where relation_name = '{{ this_name }}'),
                            cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}))) as rebuilt_upstream
                {%- else %}
                cast(null as {{ cio_sync.type_string() }}) as rebuilt_upstream
                {%- endif %}
        {%- endset -%}
        {%- set row = run_query(sql).rows[0] -%}
        {%- if row[0] == 0 -%}
            {%- set reason.text = 'its table is empty' -%}
        {%- elif row[1] is none and model.fqn[1] != 'staging' -%}
            {%- set reason.text = 'the build log (' ~ log_relation ~ ') has no entry for ' ~ this -%}
        {%- elif row[2] is not none -%}
            {%- set reason.text = row[2] ~ ' was built whole since its last build' -%}
        {%- endif -%}
    {%- endif -%}
    {%- do model.update({'_cio_whole_build_reason': reason.text}) -%}
    {{ return(reason.text) }}
{%- endmacro %}

{#- Pre-hook of every incremental model of the package: before a whole build into the table
    dbt kept (whole_build_reason), its rows are removed, and the reason is logged. -#}
{% macro empty_for_whole_build() -%}
    {%- if execute and flags.INTROSPECT and model is defined and config.get('materialized') == 'incremental'
        and is_incremental() and cio_sync.whole_build_reason() -%}
        {#- Said at info level unless the table was empty (a model whose input has no rows
            at all, refunds in a shop without any, is empty at every build). -#}
        {%- set reason = cio_sync.whole_build_reason() -%}
        {{ log('cio_sync: building ' ~ this ~ ' whole: ' ~ reason, info=(reason != 'its table is empty')) }}
        {{ return(adapter.dispatch('empty_table', 'cio_sync')(this)) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__empty_table(relation) -%}
    truncate table {{ relation }}
{%- endmacro %}

{#- PostgreSQL: its indexes are dropped too, and made again after the rows are written
    (analyze_after_build), from their definitions: kept up to date row by row, ten million rows
    took several times as long to insert as to index afterwards. -#}
{% macro postgres__empty_table(relation) -%}
    {%- set indexes = run_query("select quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)"
        ~ " from pg_index as i join pg_class as c on c.oid = i.indexrelid join pg_namespace as n on n.oid = c.relnamespace"
        ~ " where i.indrelid = '" ~ (relation | string | replace("'", "''")) ~ "'::regclass"
        ~ " and not exists (select 1 from pg_constraint as k where k.conindid = i.indexrelid) order by 1") -%}
    {%- do model.update({'_cio_dropped_indexes': indexes.columns[1].values() | list}) -%}
    truncate table {{ relation }}
    {%- for name in indexes.columns[0].values() %};
    drop index {{ name }}
    {%- endfor %}
{%- endmacro %}

{#- Redshift's TRUNCATE commits the transaction: a delete keeps the build in one. -#}
{% macro redshift__empty_table(relation) -%}
    delete from {{ relation }}
{%- endmacro %}

{#- meta.cio of cio_subscription_objects: subscriptions as objects of the type Customer.io gave
    them (var cio_subscription_object_type_id), removed only if var
    cio_subscription_objects_on_delete says delete, within var cio_subscription_max_deletes. -#}
{% macro subscription_object_meta() -%}
    {{ return({
        'kind': 'object',
        'object_type_id': var('cio_subscription_object_type_id') | string,
        'identifier': {'column': 'subscription_id', 'kind': 'object_id'},
        'on_delete': var('cio_subscription_objects_on_delete', 'ignore'),
        'max_deletes': var('cio_subscription_max_deletes', '5%'),
        'inputs': ['subscriptions'],
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
    }) }}
{%- endmacro %}

{#- meta.cio of cio_subscription_relationships: each person related to their subscriptions; a
    pair that leaves the model (a subscription moved to another customer, quarantined) is
    removed, within var cio_subscription_max_deletes. -#}
{% macro subscription_relationship_meta() -%}
    {%- set identifier = cio_sync.identifier() -%}
    {{ return({
        'kind': 'relationship',
        'object_type_id': var('cio_subscription_object_type_id') | string,
        'identifier': {'column': identifier, 'kind': cio_sync.identifier_kind()},
        'object_id_column': 'subscription_id',
        'exclude': ['email' if identifier == 'customer_id' else 'customer_id'],
        'on_delete': 'delete',
        'max_deletes': var('cio_subscription_max_deletes', '5%'),
        'inputs': ['subscriptions'],
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
    }) }}
{%- endmacro %}

{#- Whether subscriptions are synced as objects: the input is used and var
    cio_subscription_object_type_id is set. -#}
{% macro subscription_objects_enabled() -%}
    {{ return(cio_sync.input_enabled('subscriptions') and var('cio_subscription_object_type_id', none) is not none) }}
{%- endmacro %}

{#- meta.cio of cio_devices: each person's push tokens; a token that leaves the model (the app
    reported it gone, it moved to another customer) is removed from its person, within var
    cio_device_max_deletes. -#}
{% macro device_meta() -%}
    {%- set identifier = cio_sync.identifier() -%}
    {{ return({
        'kind': 'device',
        'identifier': {'column': identifier, 'kind': cio_sync.identifier_kind()},
        'token_column': 'token',
        'platform_column': 'platform',
        'last_used_column': 'last_used_at',
        'exclude': ['email' if identifier == 'customer_id' else 'customer_id'],
        'on_delete': 'delete',
        'max_deletes': var('cio_device_max_deletes', '5%'),
        'inputs': ['devices'],
        'build_log_schema': var('cio_state_schema', 'cio_sync_state'),
    }) }}
{%- endmacro %}
