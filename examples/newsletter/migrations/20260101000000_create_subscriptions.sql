CREATE TABLE subscriptions (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    token TEXT NOT NULL,
    subscribed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
