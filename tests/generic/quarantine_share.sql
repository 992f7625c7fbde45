{#- The share of an input's rows kept out of Customer.io (reason_column set) stays under
    max_share (default var cio_max_quarantine_share). A jump means a source broke: a time-zone
    change, a renamed column, a test-data load, customer ids that stopped matching.

    On an intermediate model, give the staging model it reads (`staging`) and its key columns
    (`keys`): staging's rows without a key never reach the intermediate model but are kept out
    too, so they count, and every reason in cio_quarantine counts toward its input's share. -#}
{% test quarantine_share(model, max_share=none, reason_column='_cio_reason', staging=none, keys=[]) %}
    {{ return(adapter.dispatch('test_quarantine_share', 'cio_sync')(model, max_share, reason_column, staging, keys)) }}
{% endtest %}
