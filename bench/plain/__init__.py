"""A plain DRF runs list: the yardstick `make bench` holds the product's runs list against."""
