{{ config(meta={'cio': {
    'kind': 'people',
    'identifier': {'column': 'person_id', 'kind': 'id'},
    'build_log_schema': var('cio_state_schema'),
}}) }}
{{ bench_people_columns(source('bench', 'people'), 'n <= ' ~ var('bench_tenth_rows')) }}
