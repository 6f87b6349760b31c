"""What a measurement gives: records and their statuses, tables, ratios, comparisons, figures."""
