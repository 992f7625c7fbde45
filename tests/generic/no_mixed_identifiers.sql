{#- One identifier kind everywhere: an id column holds no emails, an email column holds
    nothing else. Mixing them splits people into "ghost" profiles in Customer.io. -#}
{% test no_mixed_identifiers(model, column_name=none, kind=none) %}
    {{ return(adapter.dispatch('test_no_mixed_identifiers', 'cio_sync')(model, column_name, kind)) }}
{% endtest %}
