from audit_trail.entry import main

main()
