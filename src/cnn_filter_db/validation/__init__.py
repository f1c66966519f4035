"""The Great Expectations suites, one module a table: ``expectations(vocabulary, params)``
returns that table's expectations (``cnn_filter_db.validate`` runs them). Shipped inside the
package, so ``cnn-filter-db validate PATH`` works from an installed wheel in any folder."""
