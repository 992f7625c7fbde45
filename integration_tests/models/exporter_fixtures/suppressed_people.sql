{{ config(materialized='table', tags=['cio_suppression'],
          meta={'cio': {'kind': 'suppression', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'max_suppressions': env_var('CIO_FIXTURE_MAX', '2') | int, 'on_delete': 'unsuppress'}}) }}
{#- People who must be suppressed, in two states (env var CIO_FIXTURE_STEP): at step 2 p1 has
    left the list and p3, p4, p5 are on it. -#}
{%- set step = env_var('CIO_FIXTURE_STEP', '1') | int %}
select 'p1' as person_id, 'legal request' as reason where {{ step }} = 1
union all select 'p2', 'legal request'
union all select 'p3', 'fraud' where {{ step }} = 2
union all select 'p4', 'fraud' where {{ step }} = 2
union all select 'p5', 'fraud' where {{ step }} = 2
