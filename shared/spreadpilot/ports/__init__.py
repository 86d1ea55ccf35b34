"""Small interfaces between the services and the outside world.

Services depend only on these; adapters (embedded, GCP, third-party APIs)
implement them. Keeping them small keeps both adapter sets honest: one
contract test suite runs against each.
"""
