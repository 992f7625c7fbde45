{#- Deterministic event key: md5 hex of the event name and the natural key parts joined by '|'.
    Parts must be text or integer values (cast ids to text in staging; timestamps through
    unix_seconds) so every adapter renders the same bytes and produces the same key. -#}
{% macro event_key(event_name, parts) -%}
    {{ return(adapter.dispatch('event_key', 'cio_sync')(event_name, parts)) }}
{%- endmacro %}

{% macro default__event_key(event_name, parts) -%}
    md5('{{ event_name }}'
    {%- for part in parts %} || '|' || coalesce(cast({{ part }} as {{ cio_sync.type_string() }}), ''){% endfor -%}
    )
{%- endmacro %}
