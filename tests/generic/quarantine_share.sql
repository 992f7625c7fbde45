{#- On a staging model: the share of rows kept out of Customer.io (_cio_reason set) stays
    under max_share (default var cio_max_quarantine_share). A jump means a source broke:
    a time-zone change, a renamed column, a test-data load. -#}
{% test quarantine_share(model, max_share=none, reason_column='_cio_reason') %}
    {{ return(adapter.dispatch('test_quarantine_share', 'cio_sync')(model, max_share, reason_column)) }}
{% endtest %}
