/* outer /* nested 1 */ still */ SELECT 1 -- tail
; UPDATE t SET a = 7 WHERE b IN (1, 2, 3)