{#- A people model holds exactly one row per identifier: a second row would make two
    identify calls race for the same profile. -#}
{% test one_row_per_person(model, column_name=none) %}
    {{ return(adapter.dispatch('test_one_row_per_person', 'cio_sync')(model, column_name)) }}
{% endtest %}
