"""keyward: keeps Gemini API keys of several Google Cloud projects rotated, counted and published.

Importing `keyward` must stay cheap (`keyward current` and `keyward.client` are on hot paths):
nothing here imports SQLAlchemy, the Google libraries or the scheduler.
"""

__version__ = "0.1.0"
