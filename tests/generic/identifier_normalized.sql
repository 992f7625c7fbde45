{#- Every row has an identifier, and it is normalized: trimmed, no empty string, at most
    150 bytes; emails lower-case and shaped like an email; phone numbers (kind 'phone') in
    E.164. Defaults to the package's identifier (var cio_identifier); pass column_name and
    kind for your own models. -#}
{% test identifier_normalized(model, column_name=none, kind=none) %}
    {{ return(adapter.dispatch('test_identifier_normalized', 'cio_sync')(model, column_name, kind)) }}
{% endtest %}
