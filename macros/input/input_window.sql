{#- Which rows of an input an incremental staging build re-reads (docs/input-contract.md,
    "Change detection").

    An input's change time is its `loaded_at` column when it has one (when the row was last
    written to the warehouse: _fivetran_synced, _airbyte_extracted_at, the source's updated_at),
    else its event time. Staging re-reads the rows whose change time is at most
    var cio_event_lookback_hours older than the newest change it holds. Customers have no event
    time: without loaded_at they are re-read whole every build (suppression and consent changes
    must never wait for a full refresh). Order lines without loaded_at follow their order. -#}

{% macro input_keys(input_name) -%}
    {{ return({
        'customers': ['customer_id'],
        'orders': ['order_id'],
        'order_lines': ['order_id', 'sku'],
        'checkouts': ['checkout_id'],
        'subscriptions': ['subscription_id', 'status', 'updated_at'],
        'refunds': ['refund_id'],
        'devices': ['token'],
    }[input_name]) }}
{%- endmacro %}

{% macro input_event_time(input_name) -%}
    {{ return({
        'customers': none,
        'orders': 'ordered_at',
        'order_lines': none,
        'checkouts': 'started_at',
        'subscriptions': 'updated_at',
        'refunds': 'refunded_at',
        'devices': 'last_used_at',
    }[input_name]) }}
{%- endmacro %}

{#- The UTC expression of an input's change time over its raw columns, or none. -#}
{% macro change_time(input_name, columns) -%}
    {%- if columns is not none and 'loaded_at' in columns -%}
        {{ return(cio_sync.utc_timestamp(columns, 'loaded_at')) }}
    {%- endif -%}
    {%- set event = cio_sync.input_event_time(input_name) -%}
    {{ return(none if event is none else cio_sync.utc_timestamp(columns, event)) }}
{%- endmacro %}

{#- A timestamp column of an input converted to UTC by its kind (see stage_column). -#}
{% macro utc_timestamp(columns, name) -%}
    {%- set kind = columns.get(name, 'text') if columns is not none else none -%}
    {%- set expr = adapter.quote(name) if name != name | lower else name -%}
    {{ return(cio_sync.to_utc(expr, 'aware' if kind == 'aware' else 'naive')) }}
{%- endmacro %}

{#- The text form of a key column, as stage_column('id') makes it. -#}
{% macro staged_id(name) -%}
    nullif(trim(cast({{ name }} as {{ cio_sync.type_string() }})), '')
{%- endmacro %}

{#- Predicate over the raw columns of an input: the rows an incremental build re-reads. A
    timestamp column is first compared raw with a day of slack (no time zone is further from
    UTC), so that only candidate rows pay for the conversion, and is null exactly when its UTC
    form is: written on the raw column alone, both arms of the `or` can be answered through a
    B-tree on it (docs/input-contract.md, "Change detection": on PostgreSQL an index on
    loaded_at lets a build read its window instead of the whole input). -#}
{% macro in_staging_window(input_name, columns, start) -%}
    {%- set changed = cio_sync.change_time(input_name, columns) -%}
    {%- if changed is not none -%}
        {%- set name = 'loaded_at' if columns is not none and 'loaded_at' in columns else cio_sync.input_event_time(input_name) -%}
        {%- if columns is not none and columns.get(name) in ('timestamp', 'aware', 'date') -%}
            {%- set raw = adapter.quote(name) if name != name | lower else name -%}
            ({{ raw }} >= {{ dbt.dateadd('day', -1, start) }} and {{ changed }} >= {{ start }} or {{ raw }} is null)
        {%- else -%}
            ({{ changed }} >= {{ start }} or {{ changed }} is null)
        {%- endif -%}
    {%- elif input_name == 'order_lines' -%}
        {#- Lines of the orders staging re-reads, and lines without an order (their key is ''
            here: a staged id is never empty), as one semi-join. -#}
        {%- set orders = cio_sync.input_relation('orders') -%}
        (coalesce({{ cio_sync.staged_id('order_id') }}, '') in (
            select {{ cio_sync.staged_id('order_id') }} from {{ orders }} where {{ cio_sync.in_lines_order_window(this) }}
            union all
            select ''
        ))
    {%- else -%}
        (1 = 1)
    {%- endif -%}
{%- endmacro %}

{#- The same rows among the staged ones (the pre-hook deletes those without a key). -#}
{% macro in_staged_window(input_name, columns) -%}
    {%- if cio_sync.change_time(input_name, columns) is not none -%}
        (_cio_changed_at >= {{ cio_sync.window_start(this, input_name) }} or _cio_changed_at is null)
    {%- elif input_name == 'order_lines' -%}
        {%- set orders = cio_sync.input_relation('orders') -%}
        (coalesce(order_id, '') in (
            select {{ cio_sync.staged_id('order_id') }} from {{ orders }} where {{ cio_sync.in_lines_order_window(this) }}
            union all
            select ''
        ))
    {%- else -%}
        (1 = 1)
    {%- endif -%}
{%- endmacro %}

{#- Start of the window: the newest change time among the rows of `relation` (a staging
    model) with a key, where `condition` holds, minus the lookback (a literal, see
    timestamp_value). A change time in the future (a mistyped year: the row is quarantined)
    does not count, or it would hold the window shut until that date. -#}
{% macro window_start(relation, input_name, condition=none) -%}
    {%- set sql = 'select ' ~ dbt.dateadd('hour', -1 * var('cio_event_lookback_hours', 72), 'max(_cio_changed_at)')
        ~ ' from ' ~ relation ~ ' where ' ~ (cio_sync.input_keys(input_name) | join(' is not null and '))
        ~ ' is not null and not ' ~ cio_sync.is_future('_cio_changed_at')
        ~ ' and ' ~ (condition or '1 = 1') -%}
    {{ return(cio_sync.timestamp_value(sql)) }}
{%- endmacro %}

{#- For order lines that follow their orders: the orders window as it was when the lines were
    last staged (orders staged since may have moved it on), as a predicate over raw orders.
    stg_cio__orders is looked up in the project's graph, not ref'd: with a ref, dbt would stage
    the lines only after the orders, and the two largest staging models would run one after
    the other. Read while that model builds, it holds the rows of its previous build or of this
    one; the orders this build re-stages were either there (the same window) or are left out
    of the maximum (an earlier start: more lines re-read, none missed), as long as
    var cio_event_lookback_hours covers how late an order's stamp can follow its lines'. Not
    built at all (a new alias): every line is re-read. -#}
{% macro in_lines_order_window(lines_relation) -%}
    {%- set orders = cio_sync.input_relation('orders') -%}
    {%- set columns = cio_sync.source_columns(orders) -%}
    {%- set staged_orders = cio_sync.package_model('stg_cio__orders') -%}
    {%- if staged_orders is none -%}
        {#- No staged orders to take the window from: every line is re-read. -#}
        {%- set start = "cast('1900-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- else -%}
        {%- set condition = '_cio_staged_at <= coalesce((select max(_cio_staged_at) from ' ~ lines_relation
            ~ "), cast('1900-01-01' as " ~ dbt.type_timestamp() ~ '))' -%}
        {%- set start = cio_sync.window_start(staged_orders, 'orders', condition) -%}
    {%- endif -%}
    {{ cio_sync.in_staging_window('orders', columns, start) }}
{%- endmacro %}

{#- The _cio_changed_at column of a staging model: the input's change time, or a typed null. -#}
{% macro changed_at(input_name, columns) -%}
    {{ cio_sync.change_time(input_name, columns) or 'cast(null as ' ~ dbt.type_timestamp() ~ ')' }} as _cio_changed_at
{%- endmacro %}

{#- The relation of one of the package's models, from the project's graph (its database, schema
    and alias as configured), without a dependency on it: as the warehouse has it, none when it
    is not built there (yet, or under a new alias); compiling offline, as configured. -#}
{% macro package_model(name) -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.package_name == 'cio_sync'
        and node.name == name -%}
        {%- if execute and flags.INTROSPECT -%}
            {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
        {%- endif -%}
        {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}
