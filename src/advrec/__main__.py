from advrec.cli import main

main()
