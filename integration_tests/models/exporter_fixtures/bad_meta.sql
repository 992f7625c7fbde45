{{ config(materialized='view', tags=['cio_bad_meta'],
          meta={'cio': {'kind': 'events', 'identifier': {'column': 'person_id', 'kind': 'mobile'}}}) }}
select 'x' as person_id
