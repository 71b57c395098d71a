CREATE INDEX loans_open ON loans (book_id) WHERE NOT returned;
CREATE VIEW books_on_loan AS
    SELECT DISTINCT book_id FROM loans WHERE NOT returned;
