{#- What the valid lines of each order add up to, one row per order with a valid line: items
    (JSON text, the var cio_items_max most valuable lines, highest value first), item_count
    (units) and top_category (category of the most valuable line that has one). Every figure
    is a window over the lines of the order in value order, so one sort computes them all.
    `lines`: the staged lines to read, a relation or subquery (all of them when none). -#}
{% macro order_line_summaries(lines=none) -%}
    {%- set window = 'partition by ' ~ cio_sync.sort_key('order_id') ~ ' order by line_total desc, ' ~ cio_sync.sort_key('sku') -%}
    {%- set whole_order = window ~ ' rows between unbounded preceding and unbounded following' -%}
    select
        order_id,
        items,
        item_count,
        substr(ranked_category, 11, 256) as top_category
    from (
        select
            order_id,
            {#- A boolean, not `line_rank = 1` below: PostgreSQL estimates half the rows for it
                where it guesses 0.5% of them for the comparison, and a join with a thousand
                times too few rows on one side is planned wrong. #}
            line_rank = 1 as is_first_line,
            {{ cio_sync.json_array_window('case when line_rank <= ' ~ var('cio_items_max', 20) ~ ' then ' ~ cio_sync.json_object([
                ('sku', 'sku', 'string'),
                ('quantity', 'quantity', 'number'),
                ('line_total', 'line_total', 'number'),
                ('product_category', 'product_category', 'string'),
            ]) ~ ' end', cio_sync.sort_key('order_id'), 'line_total desc, ' ~ cio_sync.sort_key('sku')) }} as items,
            sum(quantity) over ({{ whole_order }}) as item_count,
            {#- The first category in value order: the least of the categories prefixed with
                their line's rank (a window minimum, needing no other order than the items'). #}
            min(case when product_category is not null
                then {{ cio_sync.rank_prefix('line_rank') }} || product_category end) over ({{ whole_order }}) as ranked_category
        from (
            select
                order_id,
                sku,
                quantity,
                line_total,
                product_category,
                row_number() over ({{ window }}) as line_rank
            from {{ lines or ref('stg_cio__order_lines') }} as lines
            where _cio_reason is null
        ) as ranked
    ) as summarized
    where is_first_line
{%- endmacro %}

{#- Of `purchases` (person_id, order_id, ordered_at), each person's latest purchase whose
    summary in `summaries` has a top category, with that category (int_cio__person_orders'
    last_category). -#}
{% macro latest_purchase_with_category(purchases, summaries) -%}
    select
        person_id,
        order_id,
        ordered_at,
        top_category
    from (
        select
            candidates.person_id,
            candidates.order_id,
            candidates.ordered_at,
            summaries.top_category,
            row_number() over (
                partition by {{ cio_sync.sort_key('candidates.person_id') }}
                order by candidates.ordered_at desc, {{ cio_sync.sort_key('candidates.order_id') }} desc
            ) = 1 as is_latest
        from {{ purchases }} as candidates
        inner join {{ summaries }} as summaries
            on {{ cio_sync.sort_key('candidates.order_id') }} = {{ cio_sync.sort_key('summaries.order_id') }}
        where summaries.top_category is not null
    ) as ranked
    where is_latest
{%- endmacro %}
