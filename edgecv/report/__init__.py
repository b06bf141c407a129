"""Reports: a run's page (run.py), a study's page (study.py), their figures (matplotlib, figures.py and
study_figures.py), page building (page.py) and table cells (cells.py, torch- and matplotlib-free, shared with
the terminal tables). Import the module you need; this package imports nothing, so the cells stay light."""
