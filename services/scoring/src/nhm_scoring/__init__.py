"""nhm's scoring service: Every number's health, per carrier, with the reasons and an early warning."""
