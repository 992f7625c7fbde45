-- 1% of the people change: one more order and a new last order time. Returns their ids.
update {schema}.people
set orders_count = orders_count + 1,
    last_order_at = now()
where n % 100 = {slice}
returning person_id;
