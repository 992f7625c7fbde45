{{ config(materialized='table', tags=['cio_suppression'],
          meta={'cio': {'kind': 'suppression', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'max_suppressions': var('cio_max_suppressions', 2), 'on_delete': 'unsuppress'}}) }}
{#- People who must be suppressed, in two states (var cio_suppression_step): at step 2 p1 has
    left the list and p3, p4, p5 are on it. -#}
{%- set step = var('cio_suppression_step', 1) %}
select 'p1' as person_id, 'legal request' as reason where {{ step }} = 1
union all select 'p2', 'legal request'
union all select 'p3', 'fraud' where {{ step }} = 2
union all select 'p4', 'fraud' where {{ step }} = 2
union all select 'p5', 'fraud' where {{ step }} = 2
