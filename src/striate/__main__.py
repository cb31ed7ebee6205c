from striate.cli import main

main()
