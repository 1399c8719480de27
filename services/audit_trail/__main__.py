from audit_trail.cli import main

main()
