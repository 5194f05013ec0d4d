-- An article's picture, from its feed (enclosure, media:content, or the first image of its
-- content), with the words that describe it.
ALTER TABLE articles ADD COLUMN image_url TEXT;
ALTER TABLE articles ADD COLUMN image_alt TEXT;
