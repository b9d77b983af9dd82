SELECT a::varchar(10), 'x' || 'y'
'z' FROM t WHERE b ?| array['a']