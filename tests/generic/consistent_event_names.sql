{#- Event names are lower snake_case, at most 100 bytes, and no two spellings of one name
    ('Order Placed' beside 'order_placed') appear together. -#}
{% test consistent_event_names(model, column_name='event_name') %}
    {{ return(adapter.dispatch('test_consistent_event_names', 'cio_sync')(model, column_name)) }}
{% endtest %}
