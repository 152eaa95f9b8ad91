"""Templates: Jinja2 (sandboxed) and Handlebars engines, locale variants, render limits."""
