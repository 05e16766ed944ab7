"""Records for a run: tasks, file validation, client partitions, tokenization.

Nothing here imports Flower's apps; `flwr_datasets` supplies the partitioners.
Loading the package imports none of its modules: import each name from the
module that defines it, so a light one (`text_file`, `label_form`) costs a
site's message process neither datasets nor pandas.
"""
