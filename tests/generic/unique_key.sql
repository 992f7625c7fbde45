{#- One row per key (`columns`, one or several). On a model that stamps its rows with
    _cio_staged_at (the package's staging and intermediate models), only the keys of the rows
    its latest build wrote are checked (`written_by_last_build`, default true there): an
    incremental build of millions of rows checks what it changed, a full build checks all. -#}
{% test unique_key(model, columns, written_by_last_build=true) %}
    {{ return(adapter.dispatch('test_unique_key', 'cio_sync')(model, columns, written_by_last_build)) }}
{% endtest %}
