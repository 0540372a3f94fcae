"""The medallion layers: bronze, silver, quarantine and gold."""
