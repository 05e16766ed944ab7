"""`python -m fedmodel`: the same as the `fedmodel` command."""

from fedmodel.cli.main import main

main()
