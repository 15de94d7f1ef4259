from embridge.stages.cli import main

main()
