"""Sign-in and sign-out, and the language switch (`views`; templates under `templates/auth/`)."""
