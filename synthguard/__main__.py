from synthguard.cli import main

main()
