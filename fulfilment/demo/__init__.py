"""The demo: a city generated from a seed (`city`), its fleet (`fleet`) and one sign-in per role
(`accounts`)."""
