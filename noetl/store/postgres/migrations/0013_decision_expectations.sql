-- A worker may decide a group of reports before it has read what the group's lock found (one round
-- trip per decision transaction instead of two; see lock_group_as_expected in queries.sql). The lock
-- statement then checks what the decision assumed and, when it no longer holds, fails the whole
-- transaction with SQLSTATE NT001 before anything is written: the worker decides those reports
-- again from the log.
CREATE OR REPLACE FUNCTION noetl.expect(holds boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF holds IS NOT TRUE THEN
        RAISE EXCEPTION 'the rows a decision was made on changed before it was recorded'
            USING ERRCODE = 'NT001';
    END IF;
END
$$;
