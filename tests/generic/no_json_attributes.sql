{#- People attributes are flat: no JSON, array, struct or map columns, and no text column
    holding JSON objects or arrays, unless the column is listed in `allow`. Segments on
    nested values are brittle; flatten the fields you segment on. -#}
{% test no_json_attributes(model, allow=[]) %}
    {{ return(adapter.dispatch('test_no_json_attributes', 'cio_sync')(model, allow)) }}
{% endtest %}
