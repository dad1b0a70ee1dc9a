from mailtriage.cli import main

main()
