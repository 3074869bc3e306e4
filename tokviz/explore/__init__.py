"""`tokviz explore`: one exploration of a model's continuations, its session and its local web app."""
