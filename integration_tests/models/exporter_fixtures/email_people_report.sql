{{ config(materialized='view', tags=['cio_identity'],
          meta={'cio': {'kind': 'people', 'identifier': {'column': 'email', 'kind': 'email'},
                        'key_column': 'person_id', 'on_identifier_change': 'report'}}) }}
{#- People identified by email with a stable key: an email change is reported. -#}
select person_id, email, n from {{ ref('big_people') }} where n <= 20
