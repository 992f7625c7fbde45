{#- Every event row has a key and no key repeats: a duplicate would trigger a journey twice. -#}
{% test unique_event_key(model, column_name='event_id') %}
    {{ return(adapter.dispatch('test_unique_event_key', 'cio_sync')(model, column_name)) }}
{% endtest %}
