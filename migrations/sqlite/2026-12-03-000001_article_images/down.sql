ALTER TABLE articles DROP COLUMN image_alt;
ALTER TABLE articles DROP COLUMN image_url;
