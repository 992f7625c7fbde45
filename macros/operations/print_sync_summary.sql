{#- dbt run-operation print_sync_summary: rows per synced mart and quarantined rows per
    input and reason, after a build. A quick look before anything is sent. -#}
{% macro print_sync_summary() -%}
    {%- set models = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.package_name == 'cio_sync'
            and ('cio' in node.tags or node.name == 'cio_quarantine') -%}
        {%- do models.append(node) -%}
    {%- endfor -%}
    {%- for node in models | sort(attribute='name') -%}
        {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
        {%- if relation is none -%}
            {%- do print(node.name ~ ': not built') -%}
        {%- elif node.name == 'cio_quarantine' -%}
            {%- set result = run_query('select source, reason, count(*) from ' ~ relation ~ ' group by source, reason order by source, reason') -%}
            {%- do print('cio_quarantine: ' ~ (result.rows | sum(attribute=2) if result.rows else 0) ~ ' rows kept out of Customer.io') -%}
            {%- for row in result.rows -%}
                {%- do print('  ' ~ row[0] ~ ' / ' ~ row[1] ~ ': ' ~ row[2]) -%}
            {%- endfor -%}
        {%- else -%}
            {%- set result = run_query('select count(*) from ' ~ relation) -%}
            {%- set cio = node.config.meta.get('cio', {}) -%}
            {%- do print(node.name ~ ': ' ~ result.rows[0][0] ~ ' rows (' ~ cio.get('kind', '?')
                ~ (' ' ~ cio.get('event_name') if cio.get('event_name') else '') ~ ')') -%}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
