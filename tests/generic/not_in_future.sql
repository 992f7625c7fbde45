{#- No timestamp later than now plus a tolerance: a future timestamp is a time-zone bug
    and makes "within the last X hours" journeys misfire. -#}
{% test not_in_future(model, column_name, tolerance_minutes=none) %}
    {{ return(adapter.dispatch('test_not_in_future', 'cio_sync')(model, column_name, tolerance_minutes)) }}
{% endtest %}
