{#- A data-drift guardrail: rows matching `condition` should be (almost) none, e.g.
    condition="orders_count > 0 and last_order_at is null". Fails when more than
    max_rows match, or more than max_share of all rows when max_share is given. -#}
{% test guardrail(model, condition, max_rows=0, max_share=none) %}
    {{ return(adapter.dispatch('test_guardrail', 'cio_sync')(model, condition, max_rows, max_share)) }}
{% endtest %}
