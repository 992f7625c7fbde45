{#- The rows of `model` a guardrail test checks: on an event model whose meta.cio never lets an
    old event out (backfill 'skip', the package's default), the events younger than its
    max_event_age, which are all cio-export may send; every row of any other model. So the
    tests of a ten-million-row event mart read the last days, on every build. -#}
{% macro sendable_rows(model) -%}
    {%- set cio = cio_sync.meta_cio_of(model) -%}
    {%- set age = (cio.get('max_event_age') or '') | string | trim | lower -%}
    {%- if cio.get('kind') != 'event' or cio.get('backfill', 'skip') != 'skip' or not cio.get('timestamp_column')
            or age[-1:] not in ('s', 'm', 'h', 'd') or not age[:-1].isdigit() -%}
        {{ return(model) }}
    {%- endif -%}
    {%- set part = {'s': 'second', 'm': 'minute', 'h': 'hour', 'd': 'day'}[age[-1:]] -%}
    {{ return('(select * from ' ~ model ~ ' where ' ~ adapter.quote(cio['timestamp_column']) ~ ' >= '
        ~ dbt.dateadd(part, -1 * (age[:-1] | int), cio_sync.utc_now()) ~ ') as sendable') }}
{%- endmacro %}

{#- meta.cio of the model a relation was built from ({} when none is known). -#}
{% macro meta_cio_of(relation) -%}
    {%- if not execute or relation is string or relation.identifier is not defined -%}
        {{ return({}) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
            and (node.alias or node.name) | lower == relation.identifier | lower
            and node.schema | lower == (relation.schema or '') | lower -%}
        {{ return((node.config.meta or {}).get('cio', {})) }}
    {%- endfor -%}
    {{ return({}) }}
{%- endmacro %}
