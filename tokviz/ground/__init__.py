"""The ground floor: error types with exit statuses, atomic files, user folders, and the environment
a command runs in. Imports nothing else of tokviz's."""
