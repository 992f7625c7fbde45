{#- Types the package declares, so Redshift gets real lengths (plain text there is varchar(256)). -#}
{% macro type_string(length=256) -%}
    {{ return(adapter.dispatch('type_string', 'cio_sync')(length)) }}
{%- endmacro %}

{% macro default__type_string(length) -%}varchar{%- endmacro %}

{% macro redshift__type_string(length) -%}varchar({{ length }}){%- endmacro %}

{% macro type_money() -%}
    {{ return(adapter.dispatch('type_money', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__type_money() -%}numeric(18,2){%- endmacro %}

{#- A value parsed as boolean. Booleans pass through; text and numbers are read as
    true/t/yes/y/1 and false/f/no/n/0 (any case); anything else is null. -#}
{% macro safe_cast_boolean(expr, source_kind='text') -%}
    {{ return(adapter.dispatch('safe_cast_boolean', 'cio_sync')(expr, source_kind)) }}
{%- endmacro %}

{% macro default__safe_cast_boolean(expr, source_kind) -%}
    {%- if source_kind == 'boolean' -%}
        cast({{ expr }} as {{ dbt.type_boolean() }})
    {%- else -%}
        case
            when lower(trim(cast({{ expr }} as {{ cio_sync.type_string() }}))) in ('true', 't', 'yes', 'y', '1') then true
            when lower(trim(cast({{ expr }} as {{ cio_sync.type_string() }}))) in ('false', 'f', 'no', 'n', '0') then false
        end
    {%- endif -%}
{%- endmacro %}

{#- A value parsed as a number of the given type (money: numeric(18,2); an integer type), or
    null when it is not a plain decimal number ('129.00', ' 42 ', '-3.5') or does not fit the
    type: one bad value is a quarantined row, never a failed build. An integer is rounded
    ('2.5' is 3). Numbers pass through when they fit. -#}
{% macro safe_cast_number(expr, source_kind='text', data_type=none) -%}
    {%- set data_type = data_type or cio_sync.type_money() -%}
    {{ return(adapter.dispatch('safe_cast_number', 'cio_sync')(expr, source_kind, data_type)) }}
{%- endmacro %}

{#- The bound every adapter applies: money under 10^15, an integer under 10^9 (so that no
    value, rounded, overflows numeric(18,2) or a 32-bit integer); more is invalid_number. -#}
{% macro number_digits(data_type) -%}
    {{ return(15 if data_type | lower == cio_sync.type_money() | lower else 9) }}
{%- endmacro %}

{% macro default__safe_cast_number(expr, source_kind, data_type) -%}
    {%- set digits = cio_sync.number_digits(data_type) -%}
    {%- if source_kind == 'number' -%}
        case when abs({{ expr }}) < 1{{ "0" * digits }} then try_cast({{ expr }} as {{ data_type }}) end
    {%- else -%}
        {%- set text = 'trim(cast(' ~ expr ~ ' as ' ~ cio_sync.type_string() ~ '))' -%}
        case when regexp_full_match({{ text }}, '{{ cio_sync.number_pattern(digits) }}')
            then try_cast({{ text }} as {{ data_type }}) end
    {%- endif -%}
{%- endmacro %}

{#- A plain decimal number of at most `digits` digits before the point (leading zeros aside):
    no exponent, no hexadecimal, no 'nan' or 'infinity', on every adapter. -#}
{% macro number_pattern(digits) -%}
    {{ return('^[+-]?0*([0-9]{1,' ~ digits ~ '}([.][0-9]*)?|[.][0-9]+)$') }}
{%- endmacro %}

{#- PostgreSQL and Redshift have no try_cast: a value is checked before it is cast, with the
    digits before the point bounded (number_digits). The patterns repeat without a bound and
    the digits are counted apart: a bounded repetition ({1,15}) costs PostgreSQL's regular
    expressions half as much again (10 million order totals: 20 s against 14 s). The usual
    value (digits, a point, digits; no sign, no more characters than the bound has digits) is
    taken first by a pattern without alternatives and a length: a third less time than the
    general checks (10 million order totals: 4.5 s against 6.8 s; 15 million quantities: 4.4 s
    against 5.5 s). -#}
{% macro postgres__safe_cast_number(expr, source_kind, data_type) -%}
    {%- set is_money = data_type | lower == cio_sync.type_money() | lower -%}
    {%- set digits = cio_sync.number_digits(data_type) -%}
    {%- if source_kind == 'number' -%}
        case when abs({{ expr }}) < 1{{ "0" * digits }} then cast({{ expr }} as {{ data_type }}) end
    {%- else -%}
        {%- set text = 'trim(cast(' ~ expr ~ ' as ' ~ cio_sync.type_string() ~ '))' -%}
        {%- set bounded = 'length(split_part(ltrim(' ~ text ~ ", '+-0'), '.', 1)) <= " ~ digits -%}
        case
            when {{ text }} ~ '{{ "^[0-9]+[.]?[0-9]*$" if is_money else "^[0-9]+$" }}' and length({{ text }}) <= {{ digits }}
            then cast({{ text }} as {{ data_type }})
            {%- if not is_money %}
            when {{ text }} ~ '^[+-]?[0-9]+$' and {{ bounded }}
            then cast({{ text }} as {{ data_type }})
            {%- endif %}
            when {{ text }} ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)$' and {{ bounded }}
            then cast({{ 'cast(' ~ text ~ ' as numeric)' if not is_money else text }} as {{ data_type }})
        end
    {%- endif -%}
{%- endmacro %}
