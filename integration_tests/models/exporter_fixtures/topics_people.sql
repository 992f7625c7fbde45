{{ config(materialized='table', tags=['cio_topics'],
          meta={'cio': {'kind': 'people', 'identifier': {'column': 'person_id', 'kind': 'id'},
                        'create': false, 'topics': {'newsletter': 3, 'sms_offers': 7}}}) }}
{#- An update-only people model with two subscription topics: p1 and p2 exist in Customer.io
    before the sync, p3 does not and must not be created; a null topic leaves the preference
    as Customer.io has it. -#}
select 'p1' as person_id, 'gold' as tier, true as newsletter, false as sms_offers
union all select 'p2', 'silver', null, true
union all select 'p3', 'bronze', false, null
