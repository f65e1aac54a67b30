CREATE INDEX subscriptions_email ON subscriptions (email);
