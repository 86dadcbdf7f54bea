"""keyward's clients for Google's APIs: the one place googleapiclient and google-auth are used.

Each client is a small class whose API object can be passed in (tests point it at the emulator),
and every Google error is turned into a `keyward.errors` error at this boundary, so nothing above
sees an `HttpError`. Importing this package is cheap: googleapiclient is imported inside functions.
"""
