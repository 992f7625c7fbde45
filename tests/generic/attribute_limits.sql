{#- Customer.io's limits for what becomes attributes: at most 300 attributes, names of at most
    150 bytes, values of at most 1000 bytes. One failing row per offending column or value.
    Warns by default: the exporter rejects single offending rows itself, so a few should not
    stop the build; set error_if to make a share of them fatal. -#}
{% test attribute_limits(model, exclude=[], max_attributes=300, max_name_bytes=150, max_value_bytes=1000) %}
    {{ config(severity='warn') }}
    {{ return(adapter.dispatch('test_attribute_limits', 'cio_sync')(model, exclude, max_attributes, max_name_bytes, max_value_bytes)) }}
{% endtest %}
