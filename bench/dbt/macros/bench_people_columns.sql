{#- The people models' columns: the identifier and 12 typed attributes (4 text, 2 integer,
    2 numeric, 2 boolean, 2 timestamp). -#}
{% macro bench_people_columns(relation, where=none) -%}
select
    person_id,
    email, first_name, plan, city,
    orders_count, age,
    lifetime_value, avg_order_value,
    is_vip, email_opt_in,
    created_at, last_order_at
from {{ relation }}
{%- if where %}
where {{ where }}
{%- endif %}
{%- endmacro %}
